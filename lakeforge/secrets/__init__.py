"""Secrets: scopes, encrypted values (AES-GCM), ACLs."""

"""Identity: users, groups (nested), service principals and personal access tokens."""

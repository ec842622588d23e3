"""Lakehouse data: Delta tables, write-ahead logs feeding them, files under the storage root."""

"""Lineage: edges source securable -> target securable, with the entity that made them."""

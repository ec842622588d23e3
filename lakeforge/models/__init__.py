"""MLflow's model registry REST API answered by the catalog: registered models and versions are
catalog objects (`catalog.schema.model`), versions own a verified copy of their files."""

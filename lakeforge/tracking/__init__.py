"""MLflow tracking, built in: MLflow's own tracking server mounted inside Lakeforge's ASGI app, on
the platform's database, storage root and authentication, with experiment permissions decided by
the one access function (`Kind.EXPERIMENT`: CAN_READ < CAN_EDIT < CAN_MANAGE)."""

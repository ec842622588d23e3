"""Model Serving: endpoints, model workers, traffic split, inference tables, rate limits."""

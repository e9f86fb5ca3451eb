"""moon augment: raw product catalogues in, enriched multimodal training shards out (MOON2.0 co-augmentation)."""

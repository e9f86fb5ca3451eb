"""Model and image backends of the stages, each imported only when a config names it (see augment.stages)."""

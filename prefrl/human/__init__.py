"""Floor 4 for people: clips rendered from recorded states, the durable label store, the labelling page."""

"""7.2 probes: projection head, CLIP loss, retrieval."""

"""Hand-written aggregators the benchmark compares the web BFF with."""

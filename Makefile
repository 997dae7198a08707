.PHONY: setup test bench clean

# Install everything (redis-server via apt-get when missing, .venv with pinned packages).
setup:
	@scripts/bootstrap.sh

# Run the whole test suite: unit, integration (moto, DNS, redis-server) and end to end.
test: setup
	.venv/bin/python -m pytest -q

# Print API calls, wall time and peak memory of sync passes (1 and 100 bindings).
bench: setup
	.venv/bin/python benchmarks/sync_pass.py

clean:
	rm -rf .venv .pytest_cache .hypothesis build dist src/*.egg-info

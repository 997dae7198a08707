.PHONY: setup demo test bench bench-failover check-package clean

# The local sandbox demo: up, a planned and an unplanned failover drill, down. Installs only
# what the demo needs (scripts/bootstrap.sh --demo).
demo:
	@scripts/demo.sh

# Install everything (redis-server via apt-get when missing, .venv with pinned packages).
setup:
	@scripts/bootstrap.sh

# Run the whole test suite: unit, integration (moto, DNS, redis-server) and end to end; the
# first two on two workers, the end-to-end tests alone after them (scripts/test.sh).
test: setup
	@scripts/test.sh

# Print API calls, wall time and peak memory of sync passes (1 and 100 bindings).
bench: setup
	.venv/bin/python benchmarks/sync_pass.py

# Failover drills in the sandbox (about an hour): layout x NLB profile x kind, then sweeps of
# the NLB timings AWS does not publish; NLB delays run at a time scale, printed with the table.
bench-failover: setup
	.venv/bin/python benchmarks/failover.py

# Build the sdist and wheel, twine check, pipx install the wheel and run it (the tests run it too).
check-package: setup
	scripts/check-package.sh

clean:
	rm -rf .venv .venv-checkov .pytest_cache .hypothesis build dist src/*.egg-info

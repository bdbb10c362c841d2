# Targets for a machine without ROS installed (see README). Each runs `setup` first.
SHELL := /bin/bash
IN_ENV := . ./activate &&

.PHONY: setup demo test bench gpu-check mutation mutation-recheck

setup:
	@bash tools/setup.sh

demo: setup
	@$(IN_ENV) python -m r2d2_ros.demo

test: setup
	@$(IN_ENV) python -m pytest test

bench: setup
	@$(IN_ENV) python benchmarks/extraction.py && python benchmarks/messages.py && \
		python benchmarks/node_latency.py && python benchmarks/training.py && python benchmarks/tracking.py

# The GPU tests and the backends' benchmarks (one table); on a CPU-only machine, the CPU half.
gpu-check: setup
	@$(IN_ENV) python benchmarks/gpu_check.py

# Mutation testing of the core modules (mutmut, installed into .venv from requirements-dev.txt);
# slow, so not in CI. MODULES="nms metrics" runs only those; the report is in .mutation/report/.
mutation: setup
	@bash tools/mutation.sh $(MODULES)

# After adding tests: re-test only the last run's survivors (minutes, not hours), e.g.
# make mutation-recheck MODULES="params losses".
mutation-recheck: setup
	@$(IN_ENV) python tools/mutation_recheck.py $(MODULES)

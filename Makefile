# Targets for a machine without ROS installed (see README). Each runs `setup` first.
SHELL := /bin/bash
IN_ENV := . ./activate &&

.PHONY: setup demo test bench

setup:
	@bash tools/setup.sh

demo: setup
	@$(IN_ENV) python -m r2d2_ros.demo

test: setup
	@$(IN_ENV) python -m pytest test

bench: setup
	@$(IN_ENV) python benchmarks/extraction.py && python benchmarks/messages.py && \
		python benchmarks/node_latency.py && python benchmarks/training.py

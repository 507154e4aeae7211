# Benchmark targets, included by the Makefile (include bench/bench.mk).
# bench/README.md describes the suite; docs/performance.md holds its results.
#
# Each run starts its own redis-server and servers on 127.0.0.1 and stops
# them at the end; nothing else needs to be running.

.PHONY: bench bench-smoke

bench: venv ## Run every benchmark (about 10 min); results in bench/results and docs/performance.md
	$(PYTHON) -m bench.run
	$(PYTHON) -m bench.channel_layers

# Tiny sizes, one run each: proves that every benchmark still works, in well
# under a minute, without judging any timing or touching docs/.
bench-smoke: venv ## Run every benchmark at tiny sizes; checks only that each produced numbers
	$(PYTHON) -m bench.run --smoke --out var/bench-smoke

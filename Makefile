# The two commands of the README: `make demo` runs the main job on the example workspace,
# `make test` runs the whole test suite. Both install what is missing first.
WORKSPACE ?= workspaces/offshell_toy/workspace.yaml
CARGO ?= cargo

.PHONY: setup demo test bench bench-scale fixtures

setup:
	bash .ci/setup.sh

demo: setup
	mkdir -p target/demo
	$(CARGO) run --release --quiet -- validate $(WORKSPACE)
	$(CARGO) run --release --quiet -- ratios $(WORKSPACE)
	$(CARGO) run --release --quiet -- fit $(WORKSPACE) --json target/demo/fit.json
	$(CARGO) run --release --quiet -- scan $(WORKSPACE) --poi mu --range 0:3 --points 61 --stat-only \
		--json target/demo/scan.json --plot target/demo/scan_mu

test: setup
	$(CARGO) test --release

bench: setup
	$(CARGO) bench

# Scale benchmark (issue 13): synthetic workspaces into target/scale/, tables into README.md.
# BENCH_SCALE_ARGS=--quick for a few-minute version.
bench-scale: setup
	$(CARGO) build --release --quiet
	.venv/bin/python validation/bench_scale.py $(BENCH_SCALE_ARGS)

# Regenerate the example workspace's data and models (deterministic for a given seed).
fixtures: setup
	.venv/bin/python validation/make_offshell_toy.py --out workspaces/offshell_toy

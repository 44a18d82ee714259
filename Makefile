# The two commands of the README: `make demo` runs the main job on the example workspace,
# `make test` runs the whole test suite. Both install what is missing first.
WORKSPACE ?= workspaces/offshell_toy/workspace.yaml
CARGO ?= cargo

.PHONY: setup demo test python-test bench bench-scale bench-roofit bench-pyhf bench-pyhf-jax bench-hypotest bench-posterior hypotest-fixtures fixtures

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
	$(MAKE) --no-print-directory python-test

# The Python package (pyproject.toml, python/) built into .venv from the same target/ as the
# CLI, then its tests against the CLI target/release/nsbi (python/tests, under a minute; the
# CLI is built only where missing: `make test` has just built it). maturin is called by name:
# .venv/bin goes first on PATH.
python-test: setup
	test -x target/release/nsbi || $(CARGO) build --release --quiet
	PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/pip install -q --disable-pip-version-check --no-build-isolation --no-deps .
	.venv/bin/python -m pytest -q python/tests

bench: setup
	$(CARGO) bench

# Scale benchmark (issue 13): synthetic workspaces into target/scale/, tables into README.md.
# BENCH_SCALE_ARGS=--quick for a few-minute version.
bench-scale: setup
	$(CARGO) build --release --quiet
	.venv/bin/python validation/bench_scale.py $(BENCH_SCALE_ARGS)

# Binned benchmark against pyhf (issue 14): a pyhf workspace of realistic size
# (validation/make_pyhf_workspace.py, into target/pyhf-bench/), pyhf (numpy, minuit) and nsbi
# (through the general likelihood, and the binned engine alone) in one run, one core each;
# summary in target/pyhf-bench/summary.json.
# Each pyhf toy is a pyhf fit (about a minute on a busy machine): BENCH_PYHF_TOYS of them.
BENCH_PYHF_TOYS ?= 2
bench-pyhf: setup
	$(CARGO) build --release --quiet --example binned_bench
	.venv/bin/python validation/bench_pyhf.py --toys $(BENCH_PYHF_TOYS)

# The same against pyhf's jax backend (opt-in: installs jax into $(PEERS_VENV), never the
# project's .venv); pinned to one core (XLA would use every core); fit times after a first,
# compiling, fit. target/pyhf-bench/summary_jax.json.
bench-pyhf-jax: setup
	$(CARGO) build --release --quiet --example binned_bench
	test -x $(PEERS_VENV)/bin/python || python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -c "import pyhf, jax, iminuit" 2>/dev/null || \
		$(PEERS_VENV)/bin/pip install -q pyhf==0.7.6 iminuit jax
	taskset -c 0 $(PEERS_VENV)/bin/python validation/bench_pyhf.py --backend jax --toys $(BENCH_PYHF_TOYS) \
		--out target/pyhf-bench/summary_jax.json

# Toy-based hypothesis tests against pyhf's ToyCalculator (issue 15): `nsbi hypotest --calculator
# toys` and pyhf 0.7.6 on a small model (BENCH_HYPOTEST_TOYS toys per hypothesis, both) and on the
# realistic workspace of bench-pyhf (pyhf BENCH_HYPOTEST_LARGE_TOYS, each a minute or more; nsbi
# BENCH_HYPOTEST_NSBI_LARGE_TOYS), one core each, same run: toys per second and their ratio in
# target/hypotest-bench/summary.json.
BENCH_HYPOTEST_TOYS ?= 200
BENCH_HYPOTEST_LARGE_TOYS ?= 2
BENCH_HYPOTEST_NSBI_LARGE_TOYS ?= 200
bench-hypotest: setup
	$(CARGO) build --release --quiet
	.venv/bin/python validation/bench_hypotest_pyhf.py --toys $(BENCH_HYPOTEST_TOYS) \
		--large-toys $(BENCH_HYPOTEST_LARGE_TOYS) --nsbi-large-toys $(BENCH_HYPOTEST_NSBI_LARGE_TOYS)

# The pyhf references of the hypothesis tests (tests/fixtures/hypotest/, minutes; see
# validation/pyhf_hypotest_reference.py).
hypotest-fixtures: setup
	.venv/bin/python validation/pyhf_hypotest_reference.py workspaces
	.venv/bin/python validation/pyhf_hypotest_reference.py asymptotic
	.venv/bin/python validation/pyhf_hypotest_reference.py toys

# Regenerate the example workspaces' data and models (deterministic for a given seed), and the
# closed-form fixture of the two-POI off-shell example (seconds).
fixtures: setup
	.venv/bin/python validation/make_offshell_toy.py --out workspaces/offshell_toy
	.venv/bin/python validation/make_offshell2d.py --out workspaces/offshell_2d
	.venv/bin/python validation/offshell2d_closed_form.py

# Toys end to end against RooFit (opt-in: installs PyPI `root`, ~250 MB, into its own venv
# target/peers-venv, never the project's .venv). Writes target/roofit/summary.json.
PEERS_VENV ?= target/peers-venv
ROOFIT_TOYS ?= 200
NSBI_TOYS ?= 20000
bench-roofit:
	$(CARGO) build --release --quiet
	$(CARGO) build --release --quiet --example roofit_inputs
	test -x $(PEERS_VENV)/bin/python || python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -c "import ROOT, h5py" 2>/dev/null || \
		$(PEERS_VENV)/bin/pip install -q root==0.1a12 numpy h5py
	mkdir -p target/roofit
	target/release/examples/roofit_inputs workspaces/offshell_toy/workspace_exact.yaml \
		target/roofit/inputs.h5 1 10
	$(PEERS_VENV)/bin/python validation/bench_toys_roofit.py --inputs target/roofit/inputs.h5 \
		--nsbi target/release/nsbi --workspace workspaces/offshell_toy/workspace_exact.yaml \
		--toys $(ROOFIT_TOYS) --nsbi-toys $(NSBI_TOYS) --out target/roofit/summary.json

# ESS/s of `nsbi posterior` against numpyro's NUTS on the 5-parameter exact linear-Gaussian NRE,
# one core (issue 18). jax and numpyro go into the opt-in peers venv, never the default one.
bench-posterior:
	$(CARGO) build --release --quiet
	test -x $(PEERS_VENV)/bin/python || python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -c "import numpyro, arviz, h5py" 2>/dev/null || \
		$(PEERS_VENV)/bin/pip install -q jax==0.10.2 jaxlib==0.10.2 numpyro==0.22.0 arviz==0.23.4 h5py numpy
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE taskset -c 0 $(PEERS_VENV)/bin/python \
		validation/bench_posterior.py --nsbi target/release/nsbi --out target/bench_posterior.json

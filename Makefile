# The two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Stamps: re-install only when the dependency lists change.
PY_STAMP  := $(VENV)/.stamp-install
NPM_STAMP := node_modules/.stamp-install
CHROMIUM  := /usr/bin/chromium
HAPROXY   := /usr/sbin/haproxy
SUDO      := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run test install lint check-config crossbar-config unit integration browser clean

run: install
	$(VENV)/bin/gateway run

test: install $(CHROMIUM) $(HAPROXY)
	$(VENV)/bin/mypy
	npm run --silent check:types
	node --test clients/js/test/unit/ clients/status/test/
	# Two processes (pytest-xdist), a module to one process (its module-scoped nodes start once): about 11
	# minutes here against 12-15 in one process, as most of the time is nodes starting and tests waiting on them.
	$(PY) -m pytest -n 2 --dist loadfile

install: $(PY_STAMP) $(NPM_STAMP)

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)

$(PY_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# Apart, after `test`: pyproject.toml's `fuzz` extra says why. pip then reports crossbar's stale idna
	# pin as an "ERROR" of its resolver, and installs all the same (exit status 0).
	$(PY) -m pip install --quiet -e '.[fuzz]'
	touch $@

$(NPM_STAMP): package.json package-lock.json
	# Not `npm ci`: it refuses a lock file without wampy's optional platform binaries
	# (@cbor-extract/*), which this machine's registry does not serve. `npm install`
	# installs the locked versions all the same and skips the optional ones it cannot get.
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# The browser tests drive Debian's chromium (playwright-core never downloads its own browsers);
# fonts-liberation is its one recommended package the tests want (the page's screenshots).
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium fonts-liberation >/dev/null

# The load balancer test (tests/integration/test_load_balancer.py) runs docs/haproxy.cfg in Debian's
# haproxy (2.6), a process of its own in the foreground on free ports; the package's service is not used.
$(HAPROXY):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null

unit: install
	$(PY) -m pytest tests/unit

integration: install $(CHROMIUM) $(HAPROXY)
	$(PY) -m pytest tests/integration

# The demo page in headless Chromium (tests/browser/, driven by playwright-core).
browser: install $(CHROMIUM)
	$(PY) -m pytest tests/integration/test_browser.py

lint: install
	$(VENV)/bin/mypy

check-config: install
	$(VENV)/bin/gateway check-config

# Re-generate the committed .crossbar/config.yaml after editing gateway.yaml.
crossbar-config: install
	$(VENV)/bin/gateway render --out .crossbar/config.yaml

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .hypothesis

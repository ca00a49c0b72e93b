# The two commands: `make run` (execute every notebook at full size into reports/, with
# reports/index.html) and `make test`. Each creates .venv with `python3 -m venv` when it is missing
# and installs the package into it. `make gallery` is `make run` that also refreshes the committed
# README figures in data/figures/gallery/. `make student-release DEST=dir` writes what students get
# (no solutions, no instructor guide, no answers: INSTRUCTORS.md, "Handing out the labs").
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.e2ee-lab-installed

.PHONY: run test gallery lab bench clean student-release

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

run: $(STAMP)
	E2EE_LAB_SIZE=full $(PY) -m e2ee_lab.reports

gallery: $(STAMP)
	E2EE_LAB_SIZE=full $(PY) -m e2ee_lab.reports --gallery

# Two passes: first the calls with Chromium, Janus or libwebrtc alone, on a machine not yet busy (they
# must keep real time: one rendered 41 of 50 frames while another test shared the cores), then every
# other test on two pytest-xdist workers.
test: $(STAMP)
	E2EE_LAB_SIZE=ci $(PY) -m pytest -m "browser or janus or native"
	E2EE_LAB_SIZE=ci $(PY) -m pytest -n 2 -m "not (browser or janus or native)"

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

student-release: $(STAMP)
	@test -n "$(DEST)" || { echo "usage: make student-release DEST=dir"; exit 2; }
	$(PY) -m e2ee_lab.labs.instructor.release $(DEST)

bench: $(STAMP)
	$(VENV)/bin/e2ee-lab bench all

clean:
	rm -rf reports .pytest_cache .hypothesis

# camlog: `make demo` runs the whole system; `make test` runs the whole suite. Both install first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CAMLOG := $(VENV)/bin/camlog
# Debian packages camlog and its tests use, as binary:package. ffmpeg/ffprobe (independent
# client checks), chromium (headless playback test), nginx + wrk (serving baseline for the
# benchmarks; with njs, the edge cache tier), Java 17 + Maven (Kafka and Cassandra from Maven Central), npm (hls.js).
# promtool (ops/prometheus rule checks and unit tests) comes with the prometheus server package,
# whose service Debian starts on install: `apt` stops and disables it again (tests need no server).
APT_NEEDS := ffprobe:ffmpeg chromium:chromium nginx:nginx wrk:wrk java:openjdk-17-jre-headless mvn:maven npm:npm \
  /usr/lib/nginx/modules/ngx_http_js_module.so:libnginx-mod-http-js promtool:prometheus
# GStreamer's RTSP server under Debian's python3 (RTSP pull tests, ops/rtsp/testserver.py): test
# pattern, x264 (ugly), x265 (bad). No binary to probe, so each is checked with dpkg -s.
APT_DEBS := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad
HLSJS := pipeline/playback/static/vendor/hls.min.js

.PHONY: install apt python web maven demo lint test test-fast test-chaos bench plots soak down clean

install: apt python web maven

apt:
	@pkgs=""; for need in $(APT_NEEDS); do command -v $${need%%:*} >/dev/null || test -e $${need%%:*} || pkgs="$$pkgs $${need#*:}"; done; \
	for deb in $(APT_DEBS); do dpkg -s $$deb >/dev/null 2>&1 || pkgs="$$pkgs $$deb"; done; \
	if [ -n "$$pkgs" ]; then \
	  echo "installing Debian packages:$$pkgs"; \
	  SUDO=$$( [ $$(id -u) = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$pkgs && \
	  if [[ " $$pkgs " == *" prometheus "* && -d /run/systemd/system ]]; then \
	    $$SUDO systemctl disable --now prometheus; fi; \
	fi

python: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test,bench]'
	touch $@

web: $(HLSJS)

$(HLSJS): ops/web/package.json
	cd ops/web && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(dir $(HLSJS))
	cp ops/web/node_modules/hls.js/dist/hls.min.js $(HLSJS)

maven: python
	$(CAMLOG) dev fetch

demo: install
	$(CAMLOG) demo

# ruff with the rules in pyproject.toml [tool.ruff.lint]; a finding fails `make test` before any test
lint: python
	$(VENV)/bin/ruff check .

test: install lint
	$(CAMLOG) dev up
	$(VENV)/bin/pytest

test-chaos: install
	$(CAMLOG) dev up
	$(VENV)/bin/pytest -m chaos

test-fast: python lint
	$(VENV)/bin/pytest -m "not services"

# every benchmark (flame graphs and worker shapes included; --skip KEY,... to leave some out),
# then README's plots from the result: ops/bench/results/{throughput,latency,latency_hist,capacity,cpu}.png
bench: install
	$(CAMLOG) dev up
	$(PY) -m ops.bench $(BENCH_ARGS)

# redraw those plots from the committed result alone (no measurement)
plots: python
	$(PY) -m ops.bench.plots ops/bench/results/latest.json

# 30 minutes at half the measured capacity, RSS/lag/ack latency to ops/bench/results/soak.*; not in CI
soak: install
	$(CAMLOG) dev up
	$(PY) -m ops.bench.soak $(SOAK_ARGS)

down:
	$(CAMLOG) dev down

clean: down
	$(CAMLOG) dev down --purge
	rm -rf $(VENV)

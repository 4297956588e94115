#!/usr/bin/env bash
# Installs what psmesh needs on a fresh Debian machine; quick and silent when
# everything is there already. Safe to re-run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# --- Debian packages: PostgreSQL 15+, Java 17+, Maven, venv, Graphviz, Chromium ---
missing=()
have_pg() { ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && \
  ls -d /usr/lib/postgresql/*/ | sed 's#.*/\([0-9]*\)/$#\1#' | awk '$1>=15{f=1} END{exit !f}'; }
have_pg || missing+=(postgresql)
if ! command -v java >/dev/null 2>&1 || ! java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])'; then
  missing+=(openjdk-17-jre-headless)
fi
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# Debian's python3 makes no venv without its python3-venv (ensurepip).
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ] && ! "$PY" -c 'import ensurepip' >/dev/null 2>&1; then
  missing+=("python3-venv")
fi
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
# Headless, for the executive page's test (tests/integration/test_exec_page.py).
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)  # a font, so screenshots show text
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    say "missing Debian packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})"
    exit 1
  fi
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # The server package must not start Debian's own cluster: psmesh runs a private one.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null 2>&1; then
    $SUDO pg_ctlcluster --force "$(ls /usr/lib/postgresql | sort -n | tail -1)" main stop 2>/dev/null || true
  fi
fi

# --- Python: a venv with the project and its test tools ----------------------
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=".venv/.psmesh-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi

# --- Kafka: the broker's jars from Maven Central -----------------------------
.venv/bin/psmesh dev fetch >/dev/null

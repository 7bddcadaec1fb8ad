# Sourced by scripts/serve and scripts/test: make .venv and install chatwire into it when
# it is missing or pyproject.toml changed since the last install.
ensure_venv() {
  local extra="$1" py="${PYTHON:-python3}" stamp
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "chatwire needs Python 3.11 or newer (found: $("$py" --version 2>&1)); set PYTHON=..." >&2
    exit 1
  }
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  stamp="$(cat pyproject.toml | sha256sum | cut -c1-16)-${extra:-base}"
  if [ "$(cat .venv/.chatwire-installed 2>/dev/null)" != "$stamp" ]; then
    echo "installing chatwire into .venv ..." >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extra:+[$extra]}" >&2
    echo "$stamp" > .venv/.chatwire-installed
  fi
}

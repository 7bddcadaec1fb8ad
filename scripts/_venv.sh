# Sourced by scripts/serve and scripts/test: make .venv and install chatwire into it when
# it is missing, when pyproject.toml changed since the last install, or when the test
# tools are wanted and only the server was installed.
ensure_venv() {
  local extra="$1" py="${PYTHON:-python3}" hash installed
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "chatwire needs Python 3.11 or newer (found: $("$py" --version 2>&1)); set PYTHON=..." >&2
    exit 1
  }
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  hash="$(sha256sum pyproject.toml | cut -c1-16)"
  installed="$(cat .venv/.chatwire-installed 2>/dev/null || true)"
  if [ "$installed" = "$hash test" ] || [ "$installed" = "$hash ${extra:-base}" ]; then
    return 0
  fi
  echo "installing chatwire into .venv ..." >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extra:+[$extra]}" >&2
  echo "$hash ${extra:-base}" > .venv/.chatwire-installed
}

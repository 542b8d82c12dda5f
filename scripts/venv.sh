# Sourced by the scripts that install tools from PyPI (local-aws.sh,
# deploy-tools.sh): one way to make a pinned virtualenv.
#
#   pulse_venv VENV LABEL REQUIREMENT...
#
# Makes VENV with exactly these pinned requirements, once: a stamp file
# named after the requirements marks it done, so a rerun does nothing and a
# changed pin makes it anew. LABEL prefixes the log line.
pulse_venv() {
    local venv="$1" label="$2"
    shift 2
    local stamp="$venv/.pulse-installed-$(printf '%s-' "$@" | tr -c 'A-Za-z0-9.=_-' '_')"
    if [[ -f "$stamp" ]]; then
        return 0
    fi
    echo "$label: installing $* into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
    touch "$stamp"
}

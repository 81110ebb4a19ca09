# Sourced by run-in-guest and build-iommufd-kernel (bash), which define say and fail_setup.

# install_packages PKG...: apt-get install what is missing of them, from the machine's sources.
install_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} from the Debian archive"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    timeout 300 apt-get update -q >/dev/null 2>&1 || true
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
      || fail_setup "apt-get install ${missing[*]} failed"
  fi
}

# suite_index DIR SUITE: a private apt index of one Debian suite in DIR, so that the machine's
# own apt sources stay untouched; sets APT_OPTS for apt-get and apt-cache to use it.
APT_OPTS=()
suite_index() {
  local dir=$1 suite=$2
  mkdir -p "$dir/lists/partial"
  echo "deb http://deb.debian.org/debian $suite main" > "$dir/sources.list"
  : > "$dir/status"
  APT_OPTS=(-o "Dir::Etc::sourcelist=$dir/sources.list" -o Dir::Etc::sourceparts=/dev/null
            -o "Dir::State::Lists=$dir/lists" -o "Dir::State::status=$dir/status")
  timeout 300 apt-get -q "${APT_OPTS[@]}" update >/dev/null 2>&1 \
    || fail_setup "apt-get update for suite $suite failed"
}

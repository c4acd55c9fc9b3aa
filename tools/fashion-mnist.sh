#!/bin/sh
# Makes sure Fashion-MNIST is where aedenoise finds it; used by `make demo` and `make test`.
#   tools/fashion-mnist.sh [PYTHON]      (default .venv/bin/python)
# Found already ($AEDENOISE_FASHION_MNIST, the Debian package folder, the user cache): nothing
# to do. A folder named in $AEDENOISE_FASHION_MNIST that lacks the files is an error. Else, in
# this order: the Debian package dataset-fashion-mnist when apt-get can install it (as root,
# or with password-less sudo); the verified download into the user cache; or it stops with
# the commands to run.
set -u
PY=${1:-.venv/bin/python}
"$PY" -c "import aedenoise" || { echo "tools/fashion-mnist.sh: $PY cannot import aedenoise (run make setup)" >&2; exit 1; }
found() { "$PY" -c "from aedenoise.data.fashion_mnist import locate_fashion_mnist; locate_fashion_mnist()" 2>/dev/null; }
found && exit 0
if [ -n "${AEDENOISE_FASHION_MNIST:-}" ]; then  # a folder named on purpose: say what is wrong with it
  "$PY" -c "
import sys
from aedenoise.data.fashion_mnist import locate_fashion_mnist
from aedenoise.errors import AedenoiseError
try:
    locate_fashion_mnist()
except AedenoiseError as err:
    sys.exit(str(err))
"
  exit 1
fi

if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=no; fi
  if [ "$SUDO" != no ]; then
    echo "Fashion-MNIST: installing the Debian package dataset-fashion-mnist" >&2
    log=$(mktemp)
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >"$log" 2>&1 \
      || { $SUDO apt-get update -qq >>"$log" 2>&1 \
           && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >>"$log" 2>&1; } \
      || { echo "apt-get could not install it:" >&2; tail -n 5 "$log" >&2; }
    rm -f "$log"
    found && exit 0
  fi
fi

echo "Fashion-MNIST: downloading and verifying the original files into the user cache" >&2
"$PY" -c "
import sys
from aedenoise.data.fashion_mnist import load_fashion_mnist
from aedenoise.errors import AedenoiseError
try:
    load_fashion_mnist()
except AedenoiseError as err:
    sys.exit(f'{err}\n')
" && exit 0

cat >&2 <<'MSG'
Fashion-MNIST is not on this machine, and it could neither be installed nor downloaded.
Get it one of these ways, then run the command again:
  sudo apt-get install dataset-fashion-mnist           (Debian, Ubuntu)
  or put the four idx .gz files in a folder and: export AEDENOISE_FASHION_MNIST=/that/folder
MSG
exit 1

"""``python -m skdnn.playground``: serve the Playground and open its page."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from ._cli import main

# Guarded: pytest's doctest collection imports this module too.
if __name__ == "__main__":
    raise SystemExit(main())

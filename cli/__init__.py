"""medcolor's command-line front end (installed as the ``medcolor.cli`` package)."""

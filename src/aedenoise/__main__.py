from aedenoise.cli import main

raise SystemExit(main())

from cinderblock.cli import main

raise SystemExit(main())

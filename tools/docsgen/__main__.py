import sys

from tools.docsgen.reference import main

sys.exit(main())

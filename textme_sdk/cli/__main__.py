"""``python -m textme_sdk.cli`` (also what ``torchrun -m textme_sdk.cli`` runs)."""

from .app import main

if __name__ == "__main__":
    main()

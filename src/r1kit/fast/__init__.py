"""Fast paths: the same computation as TRL's plain path, cheaper. Each has an equivalence test against it."""

"""Floor 7, the front doors: `prefrl train` runs, behaviour cloning, sweeps, plots and the command line."""

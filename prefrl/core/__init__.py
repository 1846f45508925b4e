"""Floor 1-2: the loss core (pure functions on tensors), spaces, segments, comparisons, demonstrations.

Nothing here knows about environments' simulators, reward models or learners.
"""

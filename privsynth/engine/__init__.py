"""Engines that process patients in shards (issue 23): :mod:`.shard` counts a sharded view."""

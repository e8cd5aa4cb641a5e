"""The outbox (SQLite): events kept until the broker has them, on disk when the disk takes
them, in memory when it cannot. `store.Outbox` is the core's `Outbox` port."""

"""The embedded stack (SeaweedFS, tansu, topics, the schema registry, the models bucket) as child processes, the rlsizer services started next to it, and what `rlsizer up` does when one dies."""

{
  "targets": [
    {
      "target_name": "lifeboat_fs",
      "sources": ["native/lifeboat_fs.c"],
      "cflags": ["-O2", "-Wall"],
      "conditions": [["OS!='linux'", {"type": "none", "sources": []}]]
    }
  ]
}

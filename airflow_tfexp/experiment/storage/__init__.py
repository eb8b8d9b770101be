"""Where a model dir's files live and how they are read and written: local disks and gs://
buckets, atomic JSON files, the checkpoints in a model dir, and the staging copy TensorFlow works
on for a gs:// model dir. No TensorFlow here."""

"""The pure rules of data subject rights: requests, retention, the subject index's rows."""

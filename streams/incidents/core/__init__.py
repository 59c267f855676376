"""The pure rules of leak incidents: the book of incidents and the scope of a breach."""

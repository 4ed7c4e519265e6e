"""Model backends behind one protocol (see base.py): in-process llama.cpp, HTTP servers."""

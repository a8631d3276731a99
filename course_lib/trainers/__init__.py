"""The provided training loops (one readable file per algorithm) that call the student's exercises."""

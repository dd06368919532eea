-- Nothing to undo: the old triggers are not recoverable, and 'cli' is valid text.
SELECT 1;

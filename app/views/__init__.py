"""Everything a supervisor sees: the main window, dialogs, item models and menus."""

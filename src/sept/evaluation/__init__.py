"""Classification metrics and zero-shot evaluation on cached features."""

"""Reference market adapter: real data, TA-Lib strategies S1..S14, paper execution."""

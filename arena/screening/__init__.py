"""Screening the votes: which ones should not count.

Pure functions over arrays the store hands over (no database, no Streamlit); the store and the
leaderboard decide what to do with the answers.

- leaks: identity leaks, answers that give a model away and spoil the blind vote.
- voters: Chatbot Arena's sequential test per voter (or client key): who votes against the crowd.
- duplicates: the same prompt on the same image asked many times, capped per prompt key.
"""

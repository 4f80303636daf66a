"""The only modules that import streamlit: one module per page, plus shared widgets."""

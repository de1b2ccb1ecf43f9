"""Drop-in integrations for agent frameworks: each turns the framework's own "ask a human here"
into a Sayso review and resumes the run from the answer.

* :mod:`sayso.integrations.langgraph` — ``interrupt`` (and Agent Inbox's ``HumanInterrupt``) →
  review → ``Command(resume=...)`` (``pip install 'sayso[langgraph]'``);
* :mod:`sayso.integrations.openai_agents` — ``needs_approval`` tools → reviews →
  ``RunState.approve``/``reject`` (``'sayso[openai-agents]'``);
* :mod:`sayso.integrations.pydantic_ai` — ``requires_approval`` tools → reviews →
  ``DeferredToolResults`` (``'sayso[pydantic-ai]'``).

The frameworks are imported only by their own module here, so ``import sayso`` needs none.
"""

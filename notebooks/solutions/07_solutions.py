# %% [markdown]
# # Worked solutions · 07 · Cards and ChessImages
#
# Try the exercises at the end of notebook 07 first.

# %%
import math

from vsmlab.data import cards
from vsmlab.data.chessboards import judge_placement
from vsmlab.lab.exercises import check

answers = {}

# %% [markdown]
# ## 07.1 · How many grids?
#
# Choose the card of each quadrant in turn: $40 \cdot 39 \cdot 38 \cdot 37 = \binom{40}{4} \cdot 4!$.

# %%
answers["07.1"] = 40 * 39 * 38 * 37
print(f"{answers['07.1']:,} = {cards.N_SETS:,} sets x 24 orders")
check("07.1", answers["07.1"])

# %% [markdown]
# ## 07.2 · Number the sets
#
# Index = 10 x suit + rank: 4C = 3, AD = 10, AH = 20, 10S = 39. Sorted: 3 < 10 < 20 < 39, so the rank is
# $\binom{39}{4} + \binom{20}{3} + \binom{10}{2} + \binom{3}{1}$.

# %%
c1, c2, c3, c4 = sorted(cards.CARD_CODES.index(code) for code in ("4C", "AD", "AH", "10S"))
answers["07.2"] = math.comb(c4, 4) + math.comb(c3, 3) + math.comb(c2, 2) + math.comb(c1, 1)
check("07.2", answers["07.2"])

# %% [markdown]
# ## 07.3 · Legal for the lab, illegal for the released rule
#
# A white rook on e1 gives check to the black king on e8. With black to move that is an ordinary check; with
# white to move the side *not* to move is in check, which no legal game reaches.

# %%
answers["07.3"] = "4k3/8/8/8/8/8/8/4R1K1"
print(judge_placement(answers["07.3"]))
check("07.3", answers["07.3"])

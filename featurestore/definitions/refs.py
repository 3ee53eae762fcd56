"""FeatureRef: parsing and formatting of ``"view:feature"`` references."""

from __future__ import annotations

from typing import NamedTuple

from featurestore.errors import DefinitionError


class FeatureRef(NamedTuple):
    """A reference to one feature of one view, written ``"view:feature"``."""

    view: str
    feature: str

    @classmethod
    def parse(cls, text: str) -> FeatureRef:
        """Parse ``"view:feature"``.

        Example:
            >>> FeatureRef.parse("user_stats:txn_count_7d")
            FeatureRef(view='user_stats', feature='txn_count_7d')
        """
        view, sep, feature = text.partition(":")
        if not sep or not view or not feature or ":" in feature:
            msg = (
                f"Feature reference {text!r} is malformed: write 'view:feature', "
                "e.g. 'user_stats:txn_count_7d'."
            )
            raise DefinitionError(msg)
        return cls(view, feature)

    def __str__(self) -> str:
        return f"{self.view}:{self.feature}"

    def output_name(self, *, full_feature_names: bool) -> str:
        """The output column name: ``feature`` or ``view__feature``."""
        return f"{self.view}__{self.feature}" if full_feature_names else self.feature


def output_names(
    refs: list[FeatureRef], *, full_feature_names: bool, taken: tuple[str, ...] = ()
) -> list[str]:
    """The output column name of each ref, refusing collisions.

    Args:
        refs: The selected features.
        full_feature_names: Name columns ``view__feature`` instead of ``feature``.
        taken: Names already used by other columns (the entity frame's, the join keys).

    Raises:
        DefinitionError: Two refs (or a ref and a taken column) would share a column name.

    Example:
        >>> output_names([FeatureRef("a", "x"), FeatureRef("b", "x")], full_feature_names=True)
        ['a__x', 'b__x']
    """
    names = [r.output_name(full_feature_names=full_feature_names) for r in refs]
    owners: dict[str, FeatureRef] = {}
    for ref, name in zip(refs, names, strict=True):
        if name in taken:
            msg = (
                f"Feature '{ref}' would be output as column '{name}', which the entity frame "
                "already has. Rename that column, or pass full_feature_names=True."
            )
            raise DefinitionError(msg)
        if name in owners:
            msg = (
                f"Features '{owners[name]}' and '{ref}' would both be output as column "
                f"'{name}'. Pass full_feature_names=True to name columns 'view__feature', "
                "or select only one of them."
            )
            raise DefinitionError(msg)
        owners[name] = ref
    return names

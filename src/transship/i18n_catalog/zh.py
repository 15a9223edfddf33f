"""中文消息：合并所有 ``<area>_zh.py`` 模块（键和 {字段} 与英文一一对应）。"""

from transship.i18n_catalog import merged_messages

MESSAGES: dict[str, str] = merged_messages("zh")

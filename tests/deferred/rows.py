"""Rows of the deferred app's models, as its tests build them."""

from tests.deferred.models import Article, Comment, Flag, Mark, Reply, Section, Vote


def article_with_children(title="a", comments=2):
    """An article with a section (voted on once), ``comments`` comments
    (each with a reply and a flag) and a mark; the article and the section."""
    article = Article.objects.create(title=title)
    section = Section.objects.create(article=article)
    for number in range(comments):
        comment = Comment.objects.create(article=article, text=f"{title}{number}")
        Reply.objects.create(comment=comment)
        Flag.objects.create(comment=comment)
    Vote.objects.create(section=section)
    Mark.objects.create(article=article)
    return article, section
